"""The rule that tells growth without bound from growth that stops.

A check's measured runs name the candidates: what grew in every one of them.
A cache that fills up grows in each of its first hundred runs too, so the
code then runs on, untraced, in batches a quarter longer each time, and each
candidate's count is taken after every batch.

A count has stopped when it has stayed within its noise of its peak for as
many runs as it took to get there (and for `QUIET_RUNS` at least). Its
noise is the largest fall it made, from one count to a later one: a cache
that prunes itself back now and then is sampled at different points of its
cycle, so its highest count creeps up by less than that, while growth that
goes on clears it. After twice the runs, a leak of r a run is r*p above its
level at run p, which bounded noise of that size cannot make up once r*p
exceeds it. What has not stopped when the budget of runs and seconds is
spent is a leak, and the verdict says how many runs and counts support it.
"""

from __future__ import annotations

import dataclasses

# Runs a count must stay at or below its peak, at the least, to have stopped.
QUIET_RUNS = 20
# Each batch of runs between two counts is this much longer than the runs
# before it: about 30 counts over 500 runs.
BATCH_GROWTH = 0.25
# A new high by less than this part of the rise so far is not growth.
RISE_FRACTION = 50


def next_batch(runs: int) -> int:
    """Runs to make before the next count, `runs` made so far."""
    return max(1, int(runs * BATCH_GROWTH))


@dataclasses.dataclass(frozen=True)
class Growth:
    """How one candidate's count went while the code ran on: `counts[i]`
    after `runs[i]` measured runs."""

    runs: tuple[int, ...]
    counts: tuple[int, ...]

    @property
    def peak(self) -> int:
        return max(self.counts)

    @property
    def noise(self) -> int:
        """The largest fall from one count to a later one: how far the
        count moves without growing. A leak never falls."""
        high, fall = self.counts[0], 0
        for count in self.counts:
            high = max(high, count)
            fall = max(fall, high - count)
        return fall

    @property
    def tolerance(self) -> int:
        """How far past an earlier high a count may go without growing: its
        noise, or a fiftieth of its rise, whichever is more. A count of a
        common type (ints, strs) moves by one now and then for reasons of
        its own; a leak rises by a quarter of its total from one count to
        the next, which clears a fiftieth."""
        return max(self.noise, (self.peak - self.counts[0]) // RISE_FRACTION)

    @property
    def peak_run(self) -> int:
        """The run after which the count first came within its tolerance of
        its peak."""
        level = self.peak - self.tolerance
        return next(
            run for run, count in zip(self.runs, self.counts, strict=True) if count >= level
        )

    @property
    def stopped(self) -> bool:
        return self.runs[-1] - self.peak_run >= max(self.peak_run, QUIET_RUNS)

    @property
    def rises(self) -> int:
        """Counts higher than the one before."""
        return sum(b > a for a, b in zip(self.counts, self.counts[1:], strict=False))

    def words(self, noun: str) -> str:
        """What the counts say, with `noun` a plural: 'grew through 67 runs
        (+1 dict objects a run), higher at 19 of 20 counts'; 'grew for 41
        runs, then stopped (+38 dict objects after the measured runs, none
        more through run 97)'; or, for a count that also fell, 'rises and
        falls by up to 960 dict objects, and has grown no further since run
        121 (counted through run 293)'."""
        if self.stopped and self.noise:
            return (
                f"rises and falls by up to {self.noise} {noun}, and has grown no further "
                f"since run {self.peak_run} (counted through run {self.runs[-1]})"
            )
        if self.stopped:
            # The peak itself, unless it came after a pause, within tolerance.
            at = self.runs.index(self.peak_run)
            top = self.counts.index(self.peak)
            if all(
                a < b
                for a, b in zip(self.counts[at:top], self.counts[at + 1 : top + 1], strict=True)
            ):
                at = top
            late = self.peak - self.counts[at]
            after = f"{late} more by run {self.runs[top]}" if late else "none more"
            return (
                f"grew for {self.runs[at]} runs, then stopped "
                f"({self.counts[at] - self.counts[0]:+d} {noun} after the measured runs, "
                f"{after}{'' if late else f' through run {self.runs[-1]}'})"
            )
        made = self.runs[-1] - self.runs[0]
        if not made:
            return f"grew in each of the {self.runs[0]} measured runs, and no more were made"
        if self.counts[-1] <= self.counts[0]:
            return (
                f"no higher after {made} more runs than after the measured ones, "
                "but too few runs were made to tell that it stopped"
            )
        rate = (self.counts[-1] - self.counts[0]) / made if made else 0.0
        return (
            f"grew through {self.runs[-1]} runs ({_rate(rate)} {noun} a run), "
            f"higher at {self.rises} of {len(self.counts) - 1} counts"
        )


def _rate(rate: float) -> str:
    return f"{rate:+.0f}" if abs(rate) >= 10 or rate == int(rate) else f"{rate:+.2g}"
