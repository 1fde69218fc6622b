"""Language-guided visual tracking for ROS 2 (JointNLT + adaptive target retrieval).

The Python core lives here; the generated message modules (``nl_tracker_ros.msg``) are
installed by the message build into the install prefix. ``extend_path`` merges both
locations so that a source checkout and an installed tree work alike.
"""
import os
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
# Waiting OpenMP threads sleep instead of spinning, so a core taken by another process does not
# stall the others (nl_tracker_ros.threads). OpenMP reads this once, when torch loads it: it
# works where this package is imported before torch, and a value already set wins.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
__version__ = '0.1.0'
