"""The ROS 2 layer: the tracker node, image and message conversion, parameters.

The only part of nl_tracker_ros that imports rclpy or message packages.
"""
