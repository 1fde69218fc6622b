"""QoS profiles of the node's topics, shared by the node, the replay player and benchmarks.

Every subscription accepts what ordinary publishers offer: ``ros2 topic pub``, speech front-ends
and most nodes publish reliable + volatile, and a transient-local subscription would refuse all
of them (incompatible DURABILITY), so the command subscription is volatile unless the user asks
for latching. Images are best effort by default, which accepts reliable and best-effort cameras.
"""
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy


def image_qos(name: str) -> QoSProfile:
    """QoS of the image subscription: 'sensor_data' (best effort) or 'reliable', depth 1."""
    reliability = (ReliabilityPolicy.BEST_EFFORT if name == 'sensor_data'
                   else ReliabilityPolicy.RELIABLE)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=reliability,
                      durability=DurabilityPolicy.VOLATILE)


def command_qos(durability: str = 'volatile') -> QoSProfile:
    """Reliable, depth 10, and ``durability``: 'volatile' matches every publisher;
    'transient_local' also gets a latched publisher's last command when the node starts after
    it, but then refuses volatile publishers."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL
                      if durability == 'transient_local' else DurabilityPolicy.VOLATILE)


RESULT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                        reliability=ReliabilityPolicy.RELIABLE)
EVENT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                       reliability=ReliabilityPolicy.RELIABLE)
