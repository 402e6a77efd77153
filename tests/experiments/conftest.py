"""One 2-worker dask LocalCluster for the experiment tests that need one (started lazily).

Starting a cluster, and importing xdyn in each worker process, costs seconds:
``test_run_all`` and ``test_sweep`` share it. It is made by
:func:`xdyn.experiments.run_all.connect`: one thread and one ``xdyn-slot`` per
worker, and a task may see one worker die and be retried (``retries=1``).
"""

import pytest


@pytest.fixture(scope="session")
def dask_client():
    pytest.importorskip("distributed")
    from xdyn.experiments.run_all import connect

    client, cluster = connect(n_workers=2, retries=1)
    yield client
    client.close()
    cluster.close()
