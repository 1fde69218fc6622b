"""Language-guided visual tracking for ROS 2 (JointNLT + adaptive target retrieval).

The Python core lives here; the generated message modules (``nl_tracker_ros.msg``) are
installed by the message build into the install prefix. ``extend_path`` merges both
locations so that a source checkout and an installed tree work alike.
"""
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
__version__ = '0.1.0'
