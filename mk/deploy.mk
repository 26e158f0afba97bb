# Containers and Kubernetes (included by the main Makefile). See deploy/README.md.
#   make compose-up / compose-down     the whole stack in docker compose on this host
#   make images                         build the service images (IMAGE_PREFIX/IMAGE_TAG)
#   make k8s-render OVERLAY=dev         print the manifests an overlay applies
#   make k8s-deploy OVERLAY=production  migrations Job first, then everything (deploy/k8s/deploy.sh)
#   make deploy-check                   the deployment checks of `make test` alone (tests-deploy/)

IMAGE_PREFIX ?= interloper
IMAGE_TAG ?= local
IMAGE_SERVICES := gateway identity pipelines notifications agent
OVERLAY ?= dev
COMPOSE ?= docker compose

.PHONY: compose-up compose-down compose-logs images k8s-render k8s-deploy k8s-sync-traefik deploy-check

.env:
	python3 deploy/docker/init-env.py --example .env.example --output .env

compose-up: .env ## docker compose: build and start the whole stack, wait until healthy (creates .env with fresh secrets)
	$(COMPOSE) up -d --build --wait
	@echo "READY http://localhost:$$(sed -n 's/^PUBLIC_PORT=//p' .env | tail -n1 | grep . || echo 8080)"

compose-down: ## docker compose: stop and remove the containers (volumes kept; VOLUMES=1 deletes them too)
	$(COMPOSE) down $(if $(VOLUMES),--volumes,)

compose-logs: ## docker compose: follow the logs of every container
	$(COMPOSE) logs -f

images: ## Build the service images $(IMAGE_PREFIX)/<service>:$(IMAGE_TAG)
	@for s in $(IMAGE_SERVICES); do \
		echo "==> $(IMAGE_PREFIX)/$$s:$(IMAGE_TAG)"; \
		docker build -f deploy/docker/$$s.Dockerfile -t $(IMAGE_PREFIX)/$$s:$(IMAGE_TAG) . || exit 1; \
	done

k8s-render: install ## Print the Kubernetes manifests of OVERLAY (dev, production or a path)
	@uv run kubectl kustomize $(if $(wildcard $(OVERLAY)/kustomization.yaml),$(OVERLAY),deploy/k8s/overlays/$(OVERLAY))

k8s-deploy: ## Deploy OVERLAY to the current kubectl context: migrations Job, then the services
	deploy/k8s/deploy.sh $(if $(wildcard $(OVERLAY)/kustomization.yaml),$(OVERLAY),deploy/k8s/overlays/$(OVERLAY))

k8s-sync-traefik: ## Copy deploy/traefik/{traefik,dynamic}.yml into the Kubernetes base (kustomize reads below its root only); write traefik-tracing.yml (traefik.yml + tracing.yml) and its component copy
	cp deploy/traefik/traefik.yml deploy/traefik/dynamic.yml deploy/k8s/base/traefik/
	cat deploy/traefik/traefik.yml deploy/traefik/tracing.yml > deploy/traefik/traefik-tracing.yml
	cp deploy/traefik/traefik-tracing.yml deploy/k8s/components/traefik-tracing/traefik.yml

deploy-check: install ## The deployment checks: images, compose, Kubernetes manifests, Traefik config (tests-deploy/)
	uv run pytest -q tests-deploy
