"""worker: a sweep as one Ray Job — SweepSpec, Ray Tune trials of rskd_core, MLflow tracking (issue [worker])."""
