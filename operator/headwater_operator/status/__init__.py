"""What the children say, turned into each kind's status: pure functions over API objects."""
