"""A sum-tree: the data structure of proportional prioritized replay (Schaul et al. 2016, Appendix B.2.1).

Leaves hold priorities p_j; each inner node holds the sum of the leaves below it, so Σ_j p_j is the root
and a prefix-sum search finds the leaf j with Σ_{i<j} p_i ≤ u < Σ_{i≤j} p_i in one pass down the levels:
drawing u uniformly in [0, Σ p) samples j with probability p_j / Σ p. The minimum over positive leaves is
kept the same way (it gives the largest importance weight).

A forest of T equal trees (one per member of a population, dqn.prioritized) is one such tree whose level
of R = the power of two ≥ T nodes holds the T roots: tree t is the subtree below node R + t, its leaves a
block of L (a power of two ≥ size) of which the first `size` are its own. Every node of tree t is the sum
(and min) of the same children as in a tree of its own, so each tree's totals, searches and minima are
exactly those of T separate trees, at one numpy operation per level for all of them.
"""

from __future__ import annotations

import numpy as np

from qapprox.envs.validation import check_int


class SumTree:
    """Array-based binary tree over `size` leaves: node 1 is the root, node i has children 2i and
    2i+1, leaf j is node L + j (L = the power of two ≥ size). Each node holds the sum of the leaves
    below it (sampling ∝ priority) and their minimum over positive leaves (the largest importance
    weight). All operations take index arrays: one numpy operation per tree level, none per item.

    `trees` > 1: a forest (module doc) of that many trees of `size` leaves; index i = t · size + j is
    leaf j of tree t (leaf R·L + t·L + j), so the indices are those of the trees' leaves side by side.

    update() writes leaves at once and recomputes their ancestors lazily, in one batch before the
    next read (total, min, find): every node is left + right of its final children, so the tree is
    the same as after eager updates, at one pass of the levels per read instead of per write.
    That pass follows the stale leaves' ancestors only in the wide levels near the leaves; a level
    of at most WHOLE_LEVEL nodes (the top ones, where a batch of stale leaves reaches most nodes
    anyway) is recomputed whole, one slice operation per level instead of a dozen gathers.
    """

    WHOLE_LEVEL = 2048  # measured: ≈ 2× cheaper reads than following the leaves on every level

    def __init__(self, size: int, trees: int = 1):
        self.size = check_int("size", size, 1)  # leaves per tree
        self.trees = check_int("trees", trees, 1)
        self.tree_leaves, self.first_root = _padded(size), _padded(trees)  # L; R (node R + t: tree t's root)
        self.first_leaf = self.first_root * self.tree_leaves
        self.depth = self.first_leaf.bit_length() - 1  # levels above the leaves
        self.tree_depth = self.tree_leaves.bit_length() - 1  # levels of one tree above its leaves
        self.sums = np.zeros(2 * self.first_leaf)
        self.mins = np.full(2 * self.first_leaf, np.inf)
        self._stale: list[np.ndarray] = []  # leaves written since the ancestors were recomputed
        self._make_views()

    @staticmethod
    def storage_bytes(size: int, trees: int = 1) -> int:
        """The bytes of the sums and mins of SumTree(size, trees), computable before allocating it."""
        return 2 * 2 * _padded(trees) * _padded(size) * 8

    def _make_views(self) -> None:
        """Views into sums and mins, made again for a copy (see __getstate__).

        Level d holds nodes 2^d … 2^{d+1} − 1; their children are level d + 1 at even (left) and odd
        (right) positions. Levels depth − 1 … 0, bottom-up: the narrow ones are recomputed whole, through
        views (parents, left children, right children) of the sums and of the mins."""
        self._leaf_sums, self._leaf_mins = self.sums[self.first_leaf :], self.mins[self.first_leaf :]  # [j]: leaf j
        whole = [1 << d for d in reversed(range(self.depth)) if 1 << d <= self.WHOLE_LEVEL]
        self._sparse_levels = self.depth - len(whole)  # the wide levels, followed from the stale leaves
        self._whole_levels = [
            (combine, array[first : 2 * first], array[2 * first : 4 * first : 2], array[2 * first + 1 : 4 * first : 2])
            for first in whole
            for combine, array in ((np.add, self.sums), (np.minimum, self.mins))
        ]

    def __getstate__(self) -> dict:
        """deepcopy and pickle copy each array on its own, views too: keep the owners only."""
        names = ("size", "trees", "tree_leaves", "first_root", "first_leaf", "depth", "tree_depth", "sums", "mins",
                 "_stale")
        return {name: self.__dict__[name] for name in names}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._make_views()

    @property
    def total(self) -> float:
        """Σ_j p_j (over every tree)."""
        self._propagate()
        return float(self.sums[1])

    @property
    def min(self) -> float:
        """min_j p_j over positive leaves (inf when all are zero; over every tree)."""
        self._propagate()
        return float(self.mins[1])

    @property
    def totals(self) -> np.ndarray:
        """Σ_j p_j of each tree, (trees,)."""
        self._propagate()
        return self.sums[self.first_root : self.first_root + self.trees].copy()

    @property
    def minima(self) -> np.ndarray:
        """min_j p_j over each tree's positive leaves (inf where all are zero), (trees,)."""
        self._propagate()
        return self.mins[self.first_root : self.first_root + self.trees].copy()

    @property
    def values(self) -> np.ndarray:
        """p at every index 0 … trees · size − 1 (one tree: a view; read it, write through update())."""
        blocks = self._leaf_sums.reshape(self.first_root, self.tree_leaves)[: self.trees, : self.size]
        return blocks.reshape(-1)  # a copy only where a forest's trees are padded apart

    def tree_values(self, tree: int) -> np.ndarray:
        """The leaves p_0 … p_{size−1} of tree `tree` (a view: read it, write through update())."""
        first = self.first_leaf + tree * self.tree_leaves
        return self.sums[first : first + self.size]

    def get(self, indices: np.ndarray) -> np.ndarray:
        """p at `indices`."""
        return self._leaf_sums[self._positions(np.asarray(indices, dtype=np.int64))]

    def _positions(self, indices: np.ndarray) -> np.ndarray:
        """Leaf positions (node − first_leaf) of indices t · size + j: t · L + j."""
        if self.tree_leaves == self.size or self.trees == 1:
            return indices
        return indices + indices // self.size * (self.tree_leaves - self.size)

    def _indices(self, positions: np.ndarray) -> np.ndarray:
        """Indices t · size + j of leaf positions t · L + j (the inverse of _positions)."""
        if self.tree_leaves == self.size or self.trees == 1:
            return positions
        return positions - positions // self.tree_leaves * (self.tree_leaves - self.size)

    def update(self, indices: np.ndarray, values: np.ndarray | float) -> None:
        """p_j ← value for each j in `indices` (distinct within a call; a later call wins): values
        like indices, or one float for all. Ancestors follow on the next read."""
        leaves = self._positions(np.array(indices, dtype=np.int64))  # a copy: the caller may reuse its index array
        if isinstance(values, float):
            positive = values if values > 0 else np.inf
        else:
            values = np.asarray(values, dtype=np.float64)
            positive = np.where(values > 0, values, np.inf)
        self._leaf_sums[leaves] = values
        self._leaf_mins[leaves] = positive
        self._stale.append(leaves)
        if len(self._stale) >= 1024:  # bound the backlog during long stretches without reads
            self._propagate()

    def _propagate(self) -> None:
        """Every ancestor of the stale leaves from its two children, level by level: in the wide
        levels only those ancestors, in the narrow top levels every node."""
        if not self._stale:
            return
        nodes = np.concatenate([leaves.ravel() for leaves in self._stale]) + self.first_leaf
        self._stale.clear()
        for _ in range(self._sparse_levels):
            nodes = nodes >> 1  # repeated parents are recomputed to the same value
            left = nodes << 1
            self.sums[nodes] = self.sums[left] + self.sums[left + 1]
            self.mins[nodes] = np.minimum(self.mins[left], self.mins[left + 1])
        for combine, parents, left, right in self._whole_levels:  # node i = 2i (+) 2i+1, a level at once
            combine(left, right, out=parents)

    def set_values(self, values: np.ndarray, tree: int | None = None) -> None:
        """Every leaf at once (tree `tree`'s `size`, or all trees · size), then their ancestors: the same
        sums as the updates that wrote them one by one."""
        values = np.array(values, dtype=np.float64)  # a copy: `values` may be a view of this tree
        count = self.trees * self.size if tree is None else self.size
        if values.shape != (count,):
            raise ValueError(f"values has shape {values.shape}; expected ({count},)")
        first = 0 if tree is None else tree * self.size
        self.update(np.arange(first, first + count), values)

    def find(self, u: np.ndarray, tree: np.ndarray | None = None) -> np.ndarray:
        """For each u in [0, total): the index j with Σ_{i<j} p_i ≤ u < Σ_{i≤j} p_i (prefix-sum search);
        with `tree` (one tree per u, u in [0, totals[tree])), the same search within that tree (its index
        t · size + j). A subtree whose sum is 0 is never entered, so a zero leaf is never returned."""
        self._propagate()
        u = np.array(u, dtype=np.float64)
        if tree is None:
            nodes, levels = np.ones(len(u), dtype=np.int64), self.depth
        else:
            nodes, levels = self.first_root + np.asarray(tree, dtype=np.int64), self.tree_depth
        for _ in range(levels):
            left = nodes << 1
            left_sum = self.sums[left]
            go_right = (u >= left_sum) & (self.sums[left + 1] > 0)
            u -= left_sum * go_right
            nodes = left + go_right
        return self._indices(nodes - self.first_leaf)


def _padded(n: int) -> int:
    """The power of two ≥ n."""
    return 1 << (n - 1).bit_length()
