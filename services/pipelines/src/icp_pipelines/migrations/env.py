from icp_common.migrations_env import run
from icp_pipelines.db import SERVICE, metadata

run(metadata, SERVICE)
