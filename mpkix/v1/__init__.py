"""Generated protobuf and gRPC modules (do not edit; `make proto`)."""
