from icp_agent.db import SERVICE, metadata
from icp_common.migrations_env import run

run(metadata, SERVICE)
