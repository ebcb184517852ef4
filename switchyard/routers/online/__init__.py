"""Online learning on top of the offline router: a contextual bandit and a replay simulator."""

from .bandit import LinearThompsonBandit
from .replay import DriftSpec, ReplayResult, replay, write_replay_report

__all__ = ["DriftSpec", "LinearThompsonBandit", "ReplayResult", "replay", "write_replay_report"]
