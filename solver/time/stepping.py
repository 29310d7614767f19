"""The step-size controller: growth after easy steps, cut-back after a
rejected one, dt_min, dt_max, t_end and the breakpoints of the load
schedules (a step ends exactly where a schedule changes slope)."""

from __future__ import annotations

from ..config import Config

T_REL = 1e-12  # relative tolerance on times (t_end, breakpoints)


def schedule_breakpoints(cfg: Config) -> list[float]:
    """Times [s] where a load schedule changes slope: steps end exactly there."""
    times = set()
    for v in (cfg.loading.electrical.voltage, cfg.loading.electrical.current_density, cfg.loading.mechanical.value):
        if v is not None and not isinstance(v, (int, float)):
            times.update(float(p[0]) for p in v.points)
    return sorted(times)


class StepSizeController:
    """The step-size target ``dt`` [s] and the step ``h`` actually taken.

    ``h = min(dt, dt_max, t_end - t)``, shortened to end on the next
    breakpoint; the target is not shrunk by these clips. ``accept(easy)``
    multiplies the target by ``growth`` after an easy step; ``reject(h)`` sets
    it to ``cutback * h`` and says whether that is still >= ``dt_min``.

    Rejection bound (``bound_growth`` g > 0): a step of h whose solve
    failed, h larger than the last accepted step, also sets the bound
    B = 0.8 h; after each accepted step the target is clipped to B and B
    grows by g. Without it the target grew back into the size that had
    just failed, and a run near its stability limit alternated accepted and
    rejected steps (the 1019-grain specimen: 6 of 15 steps rejected, each
    costing 3-4 accepted ones); with it the steps stay just below that size
    and try it again a few steps later (g = 1.02: back to h after 11 steps).

    Change control (``dxi_target`` x > 0): the metal's largest change of the
    step, c = max|xi_(n+1) - xi_n|, roughly proportional to h while the fronts
    move smoothly, steers the target instead of the fixed factors:

        accepted:              dt = h min(g_max, x / c),  g_max = growth (easy) or 1 (hard), >= cutback h
        rejected by max_dxi:   dt = h min(0.9, max(0.2, x / c))   (other rejections: cutback h)

    so the steps keep c near x instead of growing by ``growth`` into a
    max_dxi rejection and halving (macro_fractal: 124 of ~400 attempts
    rejected by max_dxi with the fixed factors)."""

    RETRY_RANGE = (0.2, 0.9)  # a max_dxi rejection's retry, as a fraction of the rejected step

    BOUND = 0.8  # the bound after a rejection, as a fraction of the rejected step

    def __init__(self, time_cfg, breakpoints: list[float] = (), dt: float | None = None):
        self.t_end = time_cfg.t_end
        self.dt = time_cfg.dt if dt is None else dt
        self.dt_max = time_cfg.dt_max or time_cfg.t_end
        self.dt_min = time_cfg.dt_min
        self.growth, self.cutback = time_cfg.growth, time_cfg.cutback
        self.breakpoints = sorted(breakpoints)
        self.bound_growth = time_cfg.bound_growth
        self.dxi_target, self.max_dxi = time_cfg.dxi_target, time_cfg.max_dxi
        self.bound = None  # the rejection bound on the target [s] (None: none yet)
        self.last_h = None  # the last accepted step [s]

    def finished(self, t: float) -> bool:
        return t >= self.t_end * (1 - T_REL)

    def step(self, t: float) -> float:
        """The step h [s] to take from time t."""
        h = min(self.dt, self.dt_max, self.t_end - t)
        upcoming = [b for b in self.breakpoints if b > t * (1 + T_REL) + 1e-15]
        if upcoming and upcoming[0] - t < h:
            h = upcoming[0] - t
        return h

    def can_cut(self, h: float) -> bool:
        """Whether a rejected step of h would be retried (cutback * h >= dt_min)."""
        return h * self.cutback >= self.dt_min

    def reject(self, h: float, bound: bool = True, change: float | None = None) -> bool:
        """Cut the target after a rejected step of h; False once below dt_min.
        ``bound``: the solve failed, so later steps stay below 0.8 h, if h
        was larger than the last accepted step (dt grew into it). A step
        rejected by max_dxi / max_dd, or a failure at a size that had worked
        (the first of a cascade of cuts through a crack jump, or at dt_max),
        sets no bound: dt must grow back freely from the cuts. ``change``:
        the step's max|dxi|; when it broke max_dxi (and the solve did not
        fail), ``dxi_target`` sizes the retry; any other rejection cuts by
        ``cutback``."""
        self.dt = h * self.cutback
        if self.dxi_target and change is not None and change > self.max_dxi and not bound:
            lo, hi = self.RETRY_RANGE
            self.dt = h * min(hi, max(lo, self.dxi_target / change))
        grown = self.last_h is not None and h > self.last_h * (1.0 + 1e-9)
        if bound and grown and self.bound_growth > 0.0:
            self.bound = self.BOUND * h
        return self.dt >= self.dt_min

    def accept(self, easy: bool, h: float | None = None, change: float | None = None) -> None:
        """After an accepted step of h: grow the target if the step was easy
        (with ``dxi_target`` and the step's max|dxi| ``change``: as the class says)."""
        self.last_h = h
        if self.dxi_target and change is not None and h is not None:
            ratio = self.dxi_target / change if change > 0.0 else float("inf")
            new = h * max(self.cutback, min(self.growth if easy else 1.0, ratio))
            if ratio >= 1.0 and h < self.dt:  # h was clipped (dt_max, a breakpoint): keep the target
                new = max(new, self.dt)
            self.dt = new
        elif easy:
            self.dt *= self.growth
        if self.bound is not None:
            self.dt = min(self.dt, self.bound)
            self.bound *= self.bound_growth
