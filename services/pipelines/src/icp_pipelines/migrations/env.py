from icp_common.migrations_env import run
from icp_pipelines.db import SERVICE
from icp_pipelines.models import load_models, metadata

load_models()
run(metadata, SERVICE)
