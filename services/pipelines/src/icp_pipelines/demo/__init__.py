"""A small demo catalog of the project's own, so a fresh local stack has something to show.

``CATALOG_PATHS`` below is the one list of them: the value of ``INTERLOPER_CATALOG`` that the local
stack sets by default, and what the tests and benchmarks load. Components:

* ``demo_source`` (source): ``events`` (partitioned by ``date``) -> ``daily_summary``
  (partitioned), ``users`` (unpartitioned) -> ``user_report`` (unpartitioned); resource slot
  ``config`` (``demo_config``); declared destination ``demo_csv_destination``.
* ``demo_ads`` (source): one partitioned asset ``campaigns``; resource slot ``connection``
  (``demo_ads_connection``, with an ``x-oauth`` block).
* ``demo_csv_destination`` (destination): CSV files under
  ``$INTERLOPER_DATA_DIR/demo-output/<org id>/<base_path>`` (a relative ``base_path``, default
  empty; nothing is ever written outside the organisation's directory).
* ``demo_ping`` (standalone asset).
* ``demo_live`` (source): one asset ``progress`` that works for ``seconds`` (default 5) with a
  progress event (``log``) and a stdout line per step, to watch a run (and its logs) live;
  ``fail_after`` (step) makes it fail; declared destination ``demo_csv_destination``.
"""

from __future__ import annotations

from .components import (
    DemoAdsConnection,
    DemoAdsSource,
    DemoConfig,
    DemoCsvDestination,
    DemoLiveSource,
    DemoPing,
    DemoSource,
)

CATALOG_PATHS = [
    "icp_pipelines.demo.DemoSource",
    "icp_pipelines.demo.DemoAdsSource",
    "icp_pipelines.demo.DemoCsvDestination",
    "icp_pipelines.demo.DemoPing",
    "icp_pipelines.demo.DemoLiveSource",
]

__all__ = [
    "CATALOG_PATHS",
    "DemoAdsConnection",
    "DemoAdsSource",
    "DemoConfig",
    "DemoCsvDestination",
    "DemoLiveSource",
    "DemoPing",
    "DemoSource",
]
