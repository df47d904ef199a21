"""Results tables and plots from run directories."""
