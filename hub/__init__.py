"""The central hub: model registry, deployments, telemetry (see issue 4)."""
