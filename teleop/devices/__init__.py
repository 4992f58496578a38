"""Input devices, cameras and robot bridges behind the `teleop.streams` protocols.

Simulated and replay devices are always available; real drivers import their runtimes lazily and raise
`DeviceUnavailable` naming what is missing. `teleop.devices.registry` lists and opens them by name.
"""
