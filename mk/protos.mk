# Protobuf contracts and their generated Python stubs (included by the main Makefile).
# Sources: protos/interloper/<service>/v1/*.proto; stubs: protos/python/src/icp_protos/interloper.
# All tools (grpcio-tools, mypy-protobuf, buf-bin) come from the uv dev group; see scripts/protos.sh.

.PHONY: protos protos-check buf-lint buf-breaking

protos: ## Regenerate the Python gRPC stubs from protos/ (commit the result)
	uv run bash scripts/protos.sh generate

protos-check: ## Fail if the committed stubs are stale, buf lint fails, or protos break compatibility with main
	uv run bash scripts/protos.sh check
	uv run bash scripts/protos.sh lint
	uv run bash scripts/protos.sh breaking

buf-lint: ## buf lint the .proto files (STANDARD rules)
	uv run bash scripts/protos.sh lint

buf-breaking: ## buf breaking (FILE rules) against the protos on branch main
	uv run bash scripts/protos.sh breaking
