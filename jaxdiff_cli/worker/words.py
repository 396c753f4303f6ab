"""The words of ``jaxdiff worker --help``: data only (the rest of --help is in helptext.py)."""

WORKER = {
    "group": (
        "A resident worker that serves every jaxdiff call of yours in milliseconds instead of a second. "
        "It has imported JAX and jaxdiff once and forks a fresh process per call, so nothing carries over "
        "between calls. Used only when its settings match the call's (interpreter, versions, JAX_*, XLA_FLAGS, "
        "JAXDIFF_*, cache folder); otherwise, or with JAXDIFF_NO_WORKER=1, the call runs as usual. "
        "JAXDIFF_WORKER=auto starts one in the background when none is running."
    ),
    "start": "Start a worker for your current settings (one per user and settings); it exits after --idle without a call.",
    "stop": "Stop the worker for your current settings; calls under way finish first. Nothing is left behind.",
    "status": "Whether a worker serves your calls with the current settings, and if not, why. Exit 0 if it does, 1 if not.",
    "idle": "Exit after this long without a call: 900, 90s, 15m, 2h.",
}
