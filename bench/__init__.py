"""`make bench`: paysaga's throughput, latency and cost measured against bare baselines."""
