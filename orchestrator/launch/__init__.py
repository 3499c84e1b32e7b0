"""Running a sweep beyond this machine: as a Ray job on a Ray cluster (``ray_job``) or as a
KubeRay RayJob on Kubernetes (``k8s``). Both run the same ``orchestrate sweep`` entrypoint;
Ray and KubeRay do the scheduling. Nothing here imports Ray at module import time."""
