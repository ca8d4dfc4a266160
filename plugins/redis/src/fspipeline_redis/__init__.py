"""fspipeline plugin for Redis Streams: the `redis` sink and the `redis` source."""
