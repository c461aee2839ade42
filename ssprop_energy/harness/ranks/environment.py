"""This process's place in a distributed run, from the environment torchrun sets."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ...errors import UserError

RANK_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")


@dataclass(frozen=True)
class Ranks:
    """This process's place in a distributed run (torchrun's environment)."""

    rank: int
    world: int
    local_rank: int
    local_world: int
    node: int

    @property
    def is_main(self) -> bool:
        """Rank 0: claims the run and writes the store."""
        return self.rank == 0

    @property
    def meters_node(self) -> bool:
        """Local rank 0: meters the node's CPU and runs CodeCarbon."""
        return self.local_rank == 0

    @property
    def nodes(self) -> int:
        return -(-self.world // self.local_world)


def ranks_from_env(environ: Mapping[str, str] | None = None) -> Ranks | None:
    """The place torchrun gave this process; None outside torchrun (no ``WORLD_SIZE``)."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env or "RANK" not in env:
        return None
    try:
        values = [
            int(env.get(name, "0" if name == "LOCAL_RANK" else "1")) for name in RANK_VARIABLES
        ]
        node = int(env.get("GROUP_RANK", "0"))
    except ValueError:
        shown = ", ".join(f"{n}={env.get(n)!r}" for n in RANK_VARIABLES)
        raise UserError(f"torchrun environment: expected whole numbers, got {shown}") from None
    rank, world, local_rank, local_world = values
    if not 0 <= rank < world or not 0 <= local_rank < local_world:
        raise UserError(f"torchrun environment: RANK={rank} of WORLD_SIZE={world} is not valid")
    return Ranks(rank, world, local_rank, local_world, node)
