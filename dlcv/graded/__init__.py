"""The graded outputs: one module per problem, each with `predict(checkpoint, *inputs, **options)`."""
