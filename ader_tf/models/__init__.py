"""Session encoders (SASRec) and the recommender model with continual losses."""
