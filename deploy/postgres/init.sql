-- Runs once, when the postgres volume is created: MLflow's database beside the service's (POSTGRES_DB=rskd).
CREATE DATABASE mlflow OWNER rskd;
