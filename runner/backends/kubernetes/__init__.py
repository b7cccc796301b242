"""The Kubernetes backend: Jobs, Deployments, Services, Ingresses, Secrets and Namespaces.

Layers, highest first: each module imports only modules of the layers below its own; modules of one
layer (separated by ``|``) do not import each other. This is the import-linter ``layers`` contract:

1. ``backend`` — :class:`KubernetesBackend`, the Backend facade (with the ServiceInventory capability).
2. ``inventory`` | ``jobs`` | ``services`` — what is deployed, listed and deleted by label (the CLI's
   listings, the backend's service inventory) | batch stages as Jobs | service stages: apply, roll
   out, roll back.
3. ``driving`` | ``runs`` — feeds a reducer and performs its actions | a run's namespace, code,
   secrets, clean-up and teardown.
4. ``watching`` | ``lease`` — watches and followed logs in threads, bridged onto the event loop |
   the scheduler's Lease, a leader lock (used by the GitOps service, see docs/schedules.md).
5. ``api`` — the ONLY module that imports the ``kubernetes`` client (and ``urllib3``).
6. ``rest`` — pure REST conventions: resources, paths, errors, the RBAC the code needs.
7. ``job_progress`` | ``rollout_progress`` — the pure reducers of a Job's and a rollout's progress.
8. ``progress`` — what the reducers decide (actions), and patience with problems that may resolve.
9. ``observations`` — what the watches deliver, as plain data.
10. ``status`` | ``workloads`` | ``packing`` | ``shelf`` — status readings | pod template and workloads
    (both pure) | source archives | the archives the in-cluster service keeps for pods, and their tokens.
11. ``manifests`` — pure: names, labels and the objects every run ships.
12. ``errors`` | ``settings`` — our error types and settings; no I/O.

``bootstrap`` is the stdlib-only script every stage pod runs (shipped in a ConfigMap, never imported).
"""

from runner.backends.kubernetes.backend import KubernetesBackend
from runner.backends.kubernetes.settings import KubernetesSettings

__all__ = ["KubernetesBackend", "KubernetesSettings"]
