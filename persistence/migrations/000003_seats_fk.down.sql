ALTER TABLE seats ADD CONSTRAINT seats_concert_id_fkey FOREIGN KEY (concert_id) REFERENCES concerts (id);
