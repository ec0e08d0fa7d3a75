"""The base layer: what every stage may use and that imports no stage.

Settings, time parsing on the command line, the user-facing error, command-line helpers and the
project-local PostgreSQL and Mosquitto. Nothing here knows about devices, readings, alerts or
routes.
"""
