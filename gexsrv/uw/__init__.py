"""Unusual Whales webhooks (CONTRACT section 3): POST /uw frames stored raw in universal_webhooks and normalised
into option_trades_events, uw_market_agg and uw_flow_alerts, all in the same group commit."""
