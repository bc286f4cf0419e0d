"""The payment sagas: one Temporal workflow per payment, its id the payment id."""
