-- A seat's concert is its option's concert: the second foreign key only
-- cost a lookup per inserted seat (366,000 for a year-long venue).
ALTER TABLE seats DROP CONSTRAINT IF EXISTS seats_concert_id_fkey;
