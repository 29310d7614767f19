"""Time integration of a run.

    stepping  StepSizeController: growth, cut-back, dt_min, schedule breakpoints
    loop      the one time loop, used by every model
    stop      SIGTERM/SIGINT -> a stop at the next safe point (check_stop)
"""
