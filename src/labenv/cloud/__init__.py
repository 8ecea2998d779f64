"""Cloud variants with Pulumi: per-learner sandboxes, managed components, a cluster to run labenv on.

Modules that import Pulumi (the programs, `mocks`) are imported only when a program runs, so the
operator and the CLI load `config`, `lifecycle` and `runner` without the `cloud` extras installed.

- `config`: typed program arguments and the admin's settings (`$LABENV_CLOUD_CONFIG`)
- `aws_sandbox`, `gcp_sandbox`: a learner's bounded, budgeted, tagged cloud identity
- `aws_managed`, `gcp_managed`: postgres and the object store as RDS/S3 or Cloud SQL/GCS
- `cluster_aws`, `cluster_gcp`, `cluster_addons`, `cluster_sizing`: EKS/GKE bootstrap
- `programs`: composition; `mocks`: offline runs; `runner`: the StackRunner interface
- `lifecycle`: what the reconciler calls (plan, ensure, destroy, list)

See docs/cloud.md for what an admin configures and what was (not) run against a real cloud.
"""
