"""N active gateway nodes: a device registry in etcd and a node-to-node peer channel."""
