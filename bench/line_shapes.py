"""The shapes of the lines bench/drift_cases.py judges the monitor on (bench/line_streams.py
makes their streams), and the order in which each set was defined: a set is written here and
committed before any change it is to judge is run on it, so its figures are out of sample."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Shape:
    name: str
    tags: int
    groups: tuple[tuple[int, ...], ...]  # tags that share one latent factor
    factor_rho: float  # lag-1 autocorrelation of the factors
    wander_rho: float  # lag-1 autocorrelation of each tag's own wander
    shares: tuple[float, float, float]  # variance of a grouped tag: factor, own wander, noise
    quality: tuple[int, ...]  # tags the quality depends on (first two also interact)
    after_concept: tuple[int, ...]  # tags it depends on after the concept change
    shift_tags: tuple[int, ...]  # tags the mean shift moves
    variance_tags: tuple[int, ...]
    broken_tag: int  # a grouped tag that loses its factor in the correlation case
    nok_rate: float = 0.12
    label_noise: float = 0.35  # sd of the noise added to the quality risk (sets the accuracy)
    extra: dict[str, float | str] = field(default_factory=dict)


# developed on
DEV = Shape("dev-8", 8, ((0, 1, 2), (3, 4)), 0.7, 0.5, (0.45, 0.25, 0.30),
            quality=(0, 3, 5, 6), after_concept=(1, 4, 7, 5), shift_tags=(0, 3, 5),
            variance_tags=(5, 6), broken_tag=1)
# held out: never looked at while the monitor was tuned
HELD_OUT = (
    Shape("held-12", 12, ((0, 1, 2, 3), (4, 5, 6), (8, 9)), 0.8, 0.6, (0.5, 0.2, 0.3),
          quality=(1, 5, 7, 10), after_concept=(2, 6, 11, 9), shift_tags=(4, 5, 6),
          variance_tags=(7,), broken_tag=9, nok_rate=0.15, label_noise=0.3),
    Shape("held-6", 6, ((0, 1), (2, 3, 4)), 0.6, 0.4, (0.35, 0.35, 0.30),
          quality=(0, 2, 5), after_concept=(1, 3, 5), shift_tags=(2, 3),
          variance_tags=(0, 4), broken_tag=0, nok_rate=0.10, label_noise=0.4),
)


# a second held-out set, fixed before the first one was looked at and left alone until the
# end: the figures reported for the final monitor
FRESH = (
    Shape("fresh-10", 10, ((0, 1), (2, 3, 4), (6, 7, 8)), 0.75, 0.55, (0.4, 0.3, 0.3),
          quality=(0, 3, 6, 9), after_concept=(1, 4, 8, 5), shift_tags=(3, 6, 9),
          variance_tags=(2, 9), broken_tag=7, nok_rate=0.14, label_noise=0.35),
    Shape("fresh-5", 5, ((0, 1, 2),), 0.65, 0.45, (0.45, 0.25, 0.30),
          quality=(0, 3, 4), after_concept=(1, 2, 4), shift_tags=(0, 3),
          variance_tags=(3,), broken_tag=2, nok_rate=0.11, label_noise=0.3),
)


# a second generator (LoopLine below), never looked at while the monitor was developed: the
# check that its figures do not hold only for streams of the first one
OTHER = (
    Shape("loop-7", 7, ((0, 1, 2), (4, 5)), 0.93, 0.6, (0.5, 0.2, 0.3),
          quality=(1, 4, 6, 3), after_concept=(0, 5, 2, 6), shift_tags=(2, 4, 6),
          variance_tags=(1, 6), broken_tag=5, nok_rate=0.13, label_noise=0.35,
          extra={"period": 45.0, "noise_df": 5.0}),
    # defined after loop-7 had shown the scale CUSUM's heavy-tail problem and before anything
    # of it was run: the held-out check of that fix
    Shape("loop-9", 9, ((0, 1), (2, 3, 4, 5), (7, 8)), 0.9, 0.5, (0.45, 0.25, 0.30),
          quality=(0, 3, 7, 6), after_concept=(1, 5, 8, 2), shift_tags=(1, 3, 6),
          variance_tags=(4, 8), broken_tag=2, nok_rate=0.12, label_noise=0.3,
          extra={"period": 70.0, "noise_df": 4.0}),
    # defined after loop-9 had shown single wild values raising mean-CUSUM alarms (and the
    # clip that followed), before anything of it was run: the held-out check of that fix
    Shape("loop-11", 11, ((0, 1, 2), (3, 4), (6, 7, 8, 9)), 0.88, 0.55, (0.4, 0.3, 0.3),
          quality=(2, 4, 8, 10), after_concept=(0, 3, 9, 5), shift_tags=(0, 4, 10),
          variance_tags=(5, 7), broken_tag=8, nok_rate=0.14, label_noise=0.35,
          extra={"period": 30.0, "noise_df": 4.5}),
    # defined (2026-12-01) after the pooled mean CUSUM was developed on every set above and
    # before anything of it was run: the held-out check of that detector. New in shape: 13 tags,
    # a group of five and two pairs, a faster ring (period 20), and Laplace measurement noise (a
    # noise law no set above has)
    Shape("loop-13", 13, ((0, 1, 2, 3, 4), (5, 6), (8, 9), (10, 11)), 0.85, 0.6, (0.45, 0.25, 0.30),
          quality=(1, 5, 9, 12), after_concept=(3, 6, 10, 7), shift_tags=(2, 6, 12),
          variance_tags=(4, 11), broken_tag=9, nok_rate=0.13, label_noise=0.35,
          extra={"period": 20.0, "noise": "laplace"}),
)


# the third held-out set (2026-12-01, evening): defined and committed before anything of the
# changes made after loop-13 was looked at (the scale CUSUM's design ratio) was run on it; one
# shape of each generator, with what no set above has: a broken tag of a pair in the first
# generator's, Student t noise with 6 degrees of freedom and a slow ring in the second's
LATE = (
    Shape("late-9", 9, ((0, 1, 2), (4, 5), (6, 7, 8)), 0.72, 0.5, (0.42, 0.28, 0.30),
          quality=(2, 4, 7, 8), after_concept=(0, 5, 6, 3), shift_tags=(1, 5, 8),
          variance_tags=(3, 6), broken_tag=4, nok_rate=0.12, label_noise=0.33),
    Shape("loop-15", 15, ((0, 1, 2), (3, 4, 5, 6), (8, 9), (11, 12, 13)), 0.9, 0.55,
          (0.45, 0.25, 0.30), quality=(0, 4, 9, 14), after_concept=(2, 5, 12, 10),
          shift_tags=(1, 7, 11), variance_tags=(3, 14), broken_tag=12, nok_rate=0.12,
          label_noise=0.35, extra={"period": 55.0, "noise_df": 6.0}),
)


# the fourth held-out set (2026-12-01, evening): defined and committed after the third had shown
# false alarms on its drift-free rows (CBPE on late-9) and before any fix of them was run on it
LAST = (
    Shape("last-11", 11, ((0, 1), (2, 3, 4), (6, 7, 8, 9)), 0.78, 0.52, (0.44, 0.26, 0.30),
          quality=(0, 3, 6, 10), after_concept=(1, 4, 9, 5), shift_tags=(2, 7, 10),
          variance_tags=(5, 8), broken_tag=3, nok_rate=0.11, label_noise=0.32),
    Shape("loop-10", 10, ((0, 1, 2, 3), (5, 6), (7, 8)), 0.87, 0.58, (0.48, 0.22, 0.30),
          quality=(1, 5, 7, 9), after_concept=(0, 6, 8, 4), shift_tags=(3, 6, 9),
          variance_tags=(2, 9), broken_tag=6, nok_rate=0.13, label_noise=0.36,
          extra={"period": 38.0, "noise": "laplace"}),
)


# the fifth held-out set (2026-12-01, evening): defined and committed after the fourth was run
# and before any experiment with the mean CUSUM's reference value k was run on it
FIFTH = (
    Shape("fifth-7", 7, ((0, 1, 2), (4, 5)), 0.68, 0.45, (0.46, 0.24, 0.30),
          quality=(0, 4, 6, 2), after_concept=(1, 5, 3, 6), shift_tags=(2, 3, 5),
          variance_tags=(1, 6), broken_tag=5, nok_rate=0.12, label_noise=0.34),
    Shape("loop-12", 12, ((0, 1, 2), (3, 4, 5), (7, 8), (9, 10, 11)), 0.91, 0.5, (0.5, 0.2, 0.3),
          quality=(2, 3, 8, 11), after_concept=(0, 4, 9, 6), shift_tags=(0, 6, 10),
          variance_tags=(5, 7), broken_tag=1, nok_rate=0.12, label_noise=0.34,
          extra={"period": 28.0, "noise_df": 4.0}),
)


# the sixth held-out set (2026-12-01, late evening): defined and committed at the start of the
# session that works on the mean-shift and broken-correlation delays, before any change of that
# session was run on it. New in shape: a first-generator line with a group of six and a lone
# quality tag shifted; a second-generator line with Student t noise of 8 degrees of freedom,
# a ring of period 24 and a shift on tags of three different groups
SIXTH = (
    Shape("sixth-10", 10, ((0, 1, 2, 3, 4, 5), (7, 8)), 0.74, 0.48, (0.43, 0.27, 0.30),
          quality=(1, 7, 9, 4), after_concept=(0, 8, 6, 3), shift_tags=(3, 8, 9),
          variance_tags=(2, 6), broken_tag=2, nok_rate=0.13, label_noise=0.33),
    Shape("loop-14", 14, ((0, 1, 2), (3, 4, 5), (6, 7), (9, 10, 11, 12)), 0.89, 0.56,
          (0.47, 0.23, 0.30), quality=(2, 6, 10, 13), after_concept=(1, 7, 12, 8),
          shift_tags=(0, 4, 13), variance_tags=(3, 11), broken_tag=10, nok_rate=0.12,
          label_noise=0.35, extra={"period": 24.0, "noise_df": 8.0}),
)


# the seventh held-out set (2026-12-02): defined and committed before it was run, on code no
# session had tuned on it. A third generator (VarLine below: coupled VAR(1) tags, no latent
# groups, sensors of finite resolution, one setpoint that never moves, a quality drawn at
# random from a logistic risk) and the way the user built the bundle: the model fitted
# on the first 3,000 rows, the next 1,000 given as --holdout-csv
SEVENTH = (
    Shape("var-8", 8, (), 0.9, 0.0, (0.0, 0.0, 0.0), quality=(0, 2, 5), after_concept=(1, 3, 6),
          shift_tags=(1, 4), variance_tags=(3, 6), broken_tag=2, nok_rate=0.12, label_noise=0.35,
          extra={"generator": "var", "holdout_csv": 1.0}),
    Shape("var-13", 13, (), 0.82, 0.0, (0.0, 0.0, 0.0), quality=(3, 7, 10, 1),
          after_concept=(0, 8, 11, 5), shift_tags=(2, 6, 9, 11), variance_tags=(4,), broken_tag=8,
          nok_rate=0.14, label_noise=0.3,
          extra={"generator": "var", "holdout_csv": 1.0, "setpoint": 12.0}),
)


# the eighth held-out set (2026-12-02): defined and committed after the tie CUSUM
# (agent.monitor.tie) was tried on development lines and before anything of it ran on these;
# one shape of each generator
EIGHTH = (
    Shape("eighth-9", 9, ((0, 1), (2, 3, 4, 5), (7, 8)), 0.7, 0.5, (0.4, 0.3, 0.3),
          quality=(1, 3, 8, 6), after_concept=(0, 4, 7, 2), shift_tags=(2, 6, 7),
          variance_tags=(5, 8), broken_tag=1, nok_rate=0.12, label_noise=0.34),
    Shape("loop-16", 16, ((0, 1, 2, 3), (4, 5), (6, 7, 8), (10, 11, 12), (13, 14)), 0.88, 0.52,
          (0.46, 0.24, 0.30), quality=(3, 5, 11, 15), after_concept=(0, 7, 13, 9),
          shift_tags=(1, 9, 14), variance_tags=(6, 12), broken_tag=13, nok_rate=0.13,
          label_noise=0.35, extra={"period": 33.0, "noise_df": 5.0}),
    Shape("var-10", 10, (), 0.87, 0.0, (0.0, 0.0, 0.0), quality=(2, 5, 9, 0),
          after_concept=(1, 6, 8, 3), shift_tags=(3, 7), variance_tags=(1, 8), broken_tag=5,
          nok_rate=0.13, label_noise=0.32, extra={"generator": "var", "holdout_csv": 1.0}),
)


# the ninth held-out set (2026-12-02, 05:00 UTC): defined and committed before anything of
# this session (the monitor's guard against non-finite values, the oracle's reference delay, any
# label-CUSUM experiment) was run on it; one shape of each generator, structures no set above
# has: the first generator with a group of four among eleven tags and a shift that straddles
# two groups and a lone tag; the second with seven-dof Student t noise, a ring of period 41 and
# a broken tag of a group of four; the third with fourteen coupled tags and two setpoints'
# worth of quality tags shifted
NINTH = (
    Shape("ninth-11", 11, ((0, 1, 2), (3, 4), (6, 7, 8, 9)), 0.75, 0.55, (0.42, 0.28, 0.30),
          quality=(2, 4, 9, 10), after_concept=(1, 3, 8, 10), shift_tags=(0, 7, 10),
          variance_tags=(3, 9), broken_tag=6, nok_rate=0.11, label_noise=0.33),
    Shape("loop-12b", 12, ((0, 1, 2), (3, 4, 5, 6), (8, 9), (10, 11)), 0.85, 0.5, (0.5, 0.2, 0.3),
          quality=(1, 4, 7, 11), after_concept=(2, 5, 9, 0), shift_tags=(3, 8, 11),
          variance_tags=(1, 10), broken_tag=4, nok_rate=0.12, label_noise=0.34,
          extra={"period": 41.0, "noise_df": 7.0}),
    Shape("var-14", 14, (), 0.85, 0.0, (0.0, 0.0, 0.0), quality=(1, 6, 12, 4),
          after_concept=(3, 9, 13, 0), shift_tags=(5, 10, 12), variance_tags=(2, 11), broken_tag=7,
          nok_rate=0.13, label_noise=0.31, extra={"generator": "var", "holdout_csv": 1.0}),
)


# the tenth held-out set (2026-12-02, 10:45 UTC): defined and committed before anything of this
# session (the studies of innovation streams for the mean shift, any change to a detector) was
# run on it; one shape of each generator, structures no set above has: the first generator with
# thirteen tags, a group of five, and a shift of two tags of one group and a lone tag; the
# second with four-dof Student t noise and a ring of period 27; the third with nine coupled tags,
# a setpoint, and two shifted tags, one of which the quality depends on
TENTH = (
    Shape("tenth-13", 13, ((0, 1, 2, 3, 4), (6, 7), (9, 10, 11)), 0.73, 0.52, (0.44, 0.26, 0.30),
          quality=(1, 6, 10, 12), after_concept=(0, 7, 11, 5), shift_tags=(2, 3, 12),
          variance_tags=(7, 9), broken_tag=10, nok_rate=0.12, label_noise=0.33),
    Shape("loop-11b", 11, ((0, 1), (2, 3, 4), (6, 7, 8, 9)), 0.86, 0.54, (0.47, 0.23, 0.30),
          quality=(0, 3, 8, 10), after_concept=(1, 4, 6, 10), shift_tags=(2, 7, 10),
          variance_tags=(4, 9), broken_tag=3, nok_rate=0.13, label_noise=0.34,
          extra={"period": 27.0, "noise_df": 4.0}),
    Shape("var-9", 9, (), 0.84, 0.0, (0.0, 0.0, 0.0), quality=(0, 4, 7), after_concept=(2, 5, 1),
          shift_tags=(4, 6), variance_tags=(1, 5), broken_tag=3, nok_rate=0.12, label_noise=0.33,
          extra={"generator": "var", "holdout_csv": 1.0, "setpoint": 8.0}),
)


# the eleventh held-out set (2026-12-02, 19:10 UTC): defined and committed before anything of
# this session (a change to how the long-run variance of a stream is estimated, found on the
# development sets) was run on it; one shape of each generator, structures no set above has:
# the first generator with ten tags, a group of four and a shift that touches both groups and a
# lone tag; the second with Laplace noise, a ring of period 36 and four groups among fourteen
# tags; the third with twelve coupled tags, a setpoint and three shifted tags
ELEVENTH = (
    Shape("eleventh-10", 10, ((0, 1, 2), (4, 5, 6, 7)), 0.78, 0.5, (0.43, 0.27, 0.30),
          quality=(0, 5, 8, 9), after_concept=(1, 4, 7, 9), shift_tags=(1, 6, 9),
          variance_tags=(2, 8), broken_tag=5, nok_rate=0.12, label_noise=0.34),
    Shape("loop-14b", 14, ((0, 1, 2), (3, 4), (5, 6, 7, 8), (10, 11, 12)), 0.87, 0.53,
          (0.48, 0.22, 0.30), quality=(2, 4, 8, 13), after_concept=(0, 6, 11, 13),
          shift_tags=(3, 7, 13), variance_tags=(1, 11), broken_tag=6, nok_rate=0.12,
          label_noise=0.34, extra={"period": 36.0, "noise": "laplace"}),
    Shape("var-12", 12, (), 0.86, 0.0, (0.0, 0.0, 0.0), quality=(1, 5, 10, 3),
          after_concept=(2, 7, 11, 0), shift_tags=(5, 8, 11), variance_tags=(0, 9), broken_tag=4,
          nok_rate=0.12, label_noise=0.32,
          extra={"generator": "var", "holdout_csv": 1.0, "setpoint": 6.0}),
)


# the twelfth held-out set (2026-12-03, 07:35 UTC): defined and committed before anything of
# this session (the pooled streams whitened in time by an AR(p) filter, found on development
# sets) was run on it; one shape of each generator, structures no set above has: the first
# generator with twelve tags, two groups of three and a pair, a shift of one tag of each group;
# the second with five-dof Student t noise, a slow ring of period 47 and three groups among
# fifteen tags; the third with eleven coupled tags, a setpoint and two shifted tags
TWELFTH = (
    Shape("twelfth-12", 12, ((0, 1, 2), (4, 5, 6), (9, 10)), 0.76, 0.53, (0.44, 0.26, 0.30),
          quality=(1, 5, 8, 11), after_concept=(2, 4, 10, 11), shift_tags=(0, 6, 9),
          variance_tags=(3, 10), broken_tag=5, nok_rate=0.12, label_noise=0.33),
    Shape("loop-15b", 15, ((0, 1, 2, 3), (5, 6, 7), (10, 11, 12)), 0.86, 0.52, (0.47, 0.23, 0.30),
          quality=(3, 6, 9, 14), after_concept=(1, 7, 12, 14), shift_tags=(2, 6, 13),
          variance_tags=(0, 11), broken_tag=11, nok_rate=0.12, label_noise=0.34,
          extra={"period": 47.0, "noise_df": 5.0}),
    Shape("var-11", 11, (), 0.85, 0.0, (0.0, 0.0, 0.0), quality=(0, 3, 8, 10),
          after_concept=(1, 6, 9, 4), shift_tags=(2, 7), variance_tags=(5, 10), broken_tag=6,
          nok_rate=0.12, label_noise=0.32,
          extra={"generator": "var", "holdout_csv": 1.0, "setpoint": 7.0}),
)


# the thirteenth held-out set (2026-12-03, 08:08 UTC): defined and committed before anything of
# this session's second change (CBPE's alarm drop bounding the reference mean's error for 99% of
# bundles) was run on it; one shape of each generator, structures no set above has: the first
# generator with nine tags, a group of four and a pair, two shifted tags of the group and the
# lone tag; the second with Laplace noise, a ring of period 31 and two groups of four among
# twelve tags; the third with thirteen coupled tags, a setpoint (not among the shifted tags)
THIRTEENTH = (
    Shape("thirteenth-9", 9, ((0, 1, 2, 3), (5, 6)), 0.77, 0.51, (0.45, 0.25, 0.30),
          quality=(2, 5, 7, 8), after_concept=(0, 6, 8, 4), shift_tags=(1, 3, 8),
          variance_tags=(4, 6), broken_tag=2, nok_rate=0.12, label_noise=0.33),
    Shape("loop-12c", 12, ((0, 1, 2, 3), (6, 7, 8, 9)), 0.85, 0.53, (0.48, 0.22, 0.30),
          quality=(1, 4, 8, 11), after_concept=(3, 7, 10, 11), shift_tags=(2, 5, 9),
          variance_tags=(0, 10), broken_tag=7, nok_rate=0.12, label_noise=0.34,
          extra={"period": 31.0, "noise": "laplace"}),
    Shape("var-13b", 13, (), 0.86, 0.0, (0.0, 0.0, 0.0), quality=(2, 5, 9, 12),
          after_concept=(0, 4, 10, 12), shift_tags=(3, 8, 11), variance_tags=(1, 6), broken_tag=7,
          nok_rate=0.12, label_noise=0.32,
          extra={"generator": "var", "holdout_csv": 1.0, "setpoint": 10.0}),
)


# the fourteenth held-out set (2026-12-03, 18:55 UTC): defined and committed before anything of
# this session's change (the innovation GLR as a detector of the monitor, studied on every set
# above) was run on it; one shape of each generator, structures no set above has: the first
# generator with ten tags, a group of five and a pair, two shifted tags of the group and one of
# the pair; the second with seven-dof Student t noise, a fast ring of period 24 and three groups
# of three among thirteen tags; the third with fifteen coupled tags and a setpoint
FOURTEENTH = (
    Shape("fourteenth-10", 10, ((0, 1, 2, 3, 4), (7, 8)), 0.78, 0.50, (0.46, 0.24, 0.30),
          quality=(1, 4, 7, 9), after_concept=(0, 5, 8, 9), shift_tags=(2, 4, 8),
          variance_tags=(3, 9), broken_tag=1, nok_rate=0.12, label_noise=0.33),
    Shape("loop-13b", 13, ((0, 1, 2), (4, 5, 6), (9, 10, 11)), 0.86, 0.52, (0.47, 0.23, 0.30),
          quality=(2, 5, 10, 12), after_concept=(1, 6, 9, 12), shift_tags=(1, 5, 12),
          variance_tags=(3, 9), broken_tag=10, nok_rate=0.12, label_noise=0.34,
          extra={"period": 24.0, "noise_df": 7.0}),
    Shape("var-15", 15, (), 0.86, 0.0, (0.0, 0.0, 0.0), quality=(0, 4, 9, 14),
          after_concept=(2, 6, 11, 14), shift_tags=(4, 9, 13), variance_tags=(1, 7), broken_tag=10,
          nok_rate=0.12, label_noise=0.32,
          extra={"generator": "var", "holdout_csv": 1.0, "setpoint": 12.0}),
)
