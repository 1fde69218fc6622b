"""Run tracker_node: ``ros2 launch nl_tracker_ros track.launch.py image_topic:=/camera/image_raw``.

Everything but the wiring comes from the params file (config/tracker.yaml by default).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description():
    """Launch description with arguments for topics, params file, device and namespace."""
    share = get_package_share_directory('nl_tracker_ros')
    arg = LaunchConfiguration
    actions = [
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of the node and its topics'),
        DeclareLaunchArgument('params_file',
                              default_value=os.path.join(share, 'config', 'tracker.yaml'),
                              description='ROS params file (node and tracker settings)'),
        DeclareLaunchArgument('image_topic', default_value='image',
                              description='camera topic (sensor_msgs/Image; with '
                                          'image_transport:=compressed, its /compressed topic)'),
        DeclareLaunchArgument('command_topic', default_value='command',
                              description='std_msgs/String language commands'),
        DeclareLaunchArgument('device', default_value='auto',
                              description='model device: auto (cuda if available, else cpu), '
                                          'cuda, cuda:1 or cpu'),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='use /clock (bag replay)'),
    ]
    # Fast DDS drops large images under best effort with the default transports.
    if 'FASTDDS_BUILTIN_TRANSPORTS' not in os.environ:
        actions.append(SetEnvironmentVariable('FASTDDS_BUILTIN_TRANSPORTS', 'LARGE_DATA'))
    actions.append(Node(
        package='nl_tracker_ros',
        executable='tracker_node',
        name='tracker_node',
        namespace=arg('namespace'),
        parameters=[arg('params_file'),
                    {'tracker.device': ParameterValue(arg('device'), value_type=str),
                     'use_sim_time': ParameterValue(arg('use_sim_time'), value_type=bool)}],
        remappings=[('image', arg('image_topic')),
                    ('image/compressed', [arg('image_topic'), '/compressed']),
                    ('command', arg('command_topic'))],
        output='screen',
        emulate_tty=True,
    ))
    return LaunchDescription(actions)
