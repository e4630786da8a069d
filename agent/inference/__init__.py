"""Running a model: runtime plug-ins (onnxruntime, LiteRT), the loaded model with its
self-test, and the columnar sample/prediction batches that cross the pipeline.

May import: agent.types, agent.errors, agent.config, agent.models.bundle (the manifest).
"""
