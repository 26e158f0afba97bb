"""Shared plumbing of the Interloper control plane services (`icp` = Interloper control plane)."""

import os

# Our processes fork children (run processes, infrastructure in tests) while gRPC is loaded.
# gRPC's fork handlers then run in the child before exec and can abort it (SIGABRT,
# "epoll_wait error: Bad file descriptor"). No process of ours uses gRPC across a fork.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
