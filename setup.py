"""Python packaging for the virtual-environment route (``pip install -e . --no-deps``).

The messages are not built here: ``scripts/setup.sh`` generates them with CMake into the same
prefix (see README "Package layout"). In a colcon workspace CMakeLists.txt installs everything.
"""
from setuptools import find_packages, setup

setup(
    name='nl_tracker_ros',
    version='0.1.0',
    description='Language-guided visual tracking for ROS 2 (JointNLT + adaptive retrieval)',
    license='MIT',
    python_requires='>=3.10',
    packages=find_packages(include=['nl_tracker_ros', 'nl_tracker_ros.*']),
    package_data={'nl_tracker_ros': ['weights/*']},   # shipped weights and their recipes
    entry_points={
        'console_scripts': [
            'nl-tracker = nl_tracker_ros.cli:main',
            'tracker_node = nl_tracker_ros.ros.node:main',
        ],
    },
)
