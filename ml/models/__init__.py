"""The two model families and what they share (text encoders): each family has its model,
train, evaluate, scoring (the one scoring function the gate also uses), pyfunc and cli."""
