"""One run on many processes: PyTorch's launcher starts them, DistributedDataParallel trains.

``profile --nproc-per-node N`` hands the command to ``torch.distributed.run`` (torchrun's own
code), which starts ``python -m ssprop_energy profile ...`` once per rank; a process started
by torchrun finds its place in the environment torchrun sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ...). NCCL on GPUs, gloo on the CPU. Every rank trains its
``DistributedSampler`` shard of the data in ``DistributedDataParallel`` and meters its own GPU
(CUDA device = its local rank); local rank 0 of every node also meters the node's CPU and runs
CodeCarbon. Rank 0 claims the run, gathers the other ranks' epoch rows, power readings and
meter faults with ``gather_object`` at each epoch's end (``run.RankSink``, the rank's epoch
sink), and alone writes the store (docs/distributed.md). ``launch``: the launcher and how a
launch or a rank fails; ``group``: the process group; ``api.profile`` joins and leaves it.
"""
