"""The service: the daemon's lifecycle (scheduler ticks, web server, signals, sd_notify,
watchdog, leases, logs).

May import every package except ``cli``.
"""
