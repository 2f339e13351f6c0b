"""The API's operations, one module per group of resources."""
