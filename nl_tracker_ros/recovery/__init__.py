"""Lost and re-found, after CTRNLT / AdaRS: corner proposals (proposals.py), the adaptive
retrieval switch (adars.py), target-specific retrieval (tsr.py), the kind classifier
(kinds.py), ``Recovery`` which scores the model's outputs with them (switch.py), and the
``Policy`` the Tracker consults every frame (policy.py). The state machine itself is
``nl_tracker_ros.state_machine``; fitting lives under ``nl_tracker_ros.training``.
"""
