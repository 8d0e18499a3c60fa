"""The distributed engine: how the shards of a job exchange vectors every step.

``allreduce`` (the algorithms and ``allreduce_mean``), the transports that carry the vectors
(``shm_transport`` on one host, ``tcp_transport`` across hosts, ``hierarchical`` with
``leader_mesh`` for both at once, Redis lists read by ``resp``), the per-attempt choice between
them (``transport``), and the two communication options of a job spec: ``overlap`` (buckets sent
during backward) and ``local_sgd`` (``sync_every``). The rest of ``worker/`` calls
``ShardContext.allreduce`` and ``attempt_transport`` only.
"""
