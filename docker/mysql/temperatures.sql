-- Run once by the mysql image's entrypoint when it initialises an empty data
-- directory. The table is the course's (SPEC §2); weather-generator creates it
-- too if it is missing, with the same statement.
CREATE DATABASE IF NOT EXISTS CS544;
USE CS544;
CREATE TABLE IF NOT EXISTS temperatures (
    id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    station_id TEXT,
    date DATE,
    degrees DOUBLE
);
