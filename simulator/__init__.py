"""A local Realtime server speaking the GA protocol, with fault profiles. Imports neither recorder nor analyzer."""
