"""relaygate: the namespace the code is moving into (issue 12); ``relaygate.contract`` first."""
