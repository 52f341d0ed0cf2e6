"""Benchmarks of dd-procmgrd against supervisord and circus (``make bench``).

``python -m benchmarks.run`` starts each supervisor on the same machine with the same
children (``/bin/sleep 3600``), counts those children from /proc (never from the
supervisor's own output) and prints one table of absolute figures plus the ratio of ours
to the best peer. See docs/benchmarks.md.
"""
