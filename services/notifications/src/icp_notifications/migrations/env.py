from icp_common.migrations_env import run
from icp_notifications.db import SERVICE, load_models, metadata

load_models()
run(metadata, SERVICE)
