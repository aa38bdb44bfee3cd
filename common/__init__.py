"""Helpers with no app behind them, which every app may import (see docs/architecture.md, Layers):
who the client is, atomic rate counting in Redis, the generic throttle, process control."""
