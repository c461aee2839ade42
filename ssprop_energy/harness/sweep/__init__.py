"""A sweep: which runs a call trains, in what order, on which shard, with progress and
signals."""
