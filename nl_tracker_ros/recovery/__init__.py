"""Lost and re-found: corner proposals, adaptive retrieval switch (AdaRS), target-specific
retrieval (TSR) and their losses. ``Recovery`` (switch.py) is the one object the Tracker calls;
its module docstring shows the calls. The state machine itself is ``nl_tracker_ros.state_machine``.
"""
from nl_tracker_ros.recovery.config import (ProposalConfig, RecoveryConfig, SearchConfig,
                                            SwitchConfig)
from nl_tracker_ros.recovery.switch import (GlobalResult, LocalResult, Recovery, Region,
                                            build_recovery)

__all__ = ['GlobalResult', 'LocalResult', 'ProposalConfig', 'Recovery', 'RecoveryConfig',
           'Region', 'SearchConfig', 'SwitchConfig', 'build_recovery']
