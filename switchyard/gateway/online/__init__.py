"""Online learning in the gateway: the routers' bandits, and the state replicas share.

``learner`` holds each router's bandit (used on the router worker thread); ``store`` defines
what is shared and its in-process implementation; ``redis_state`` shares it through Redis.
"""
