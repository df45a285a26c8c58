//! A fixed-capacity table of live objects addressed by small integer ids (connections, listeners,
//! sockets). The capacity is set at start-up; inserting into a full table fails instead of growing.

#[derive(Debug)]
pub struct Slots<T> {
    items: Vec<Option<T>>,
    free: Vec<usize>,
}

impl<T> Slots<T> {
    pub fn with_capacity(capacity: usize) -> Slots<T> {
        let mut items = Vec::with_capacity(capacity);
        items.resize_with(capacity, || None);
        Slots { items, free: (0..capacity).rev().collect() }
    }

    /// Stores `item` and returns its id, or gives it back when the table is full.
    pub fn insert(&mut self, item: T) -> Result<usize, T> {
        match self.free.pop() {
            Some(id) => {
                self.items[id] = Some(item);
                Ok(id)
            }
            None => Err(item),
        }
    }

    /// The id the next insertion gets, without taking it (to register a socket under its id first).
    pub fn free_id(&self) -> Option<usize> {
        self.free.last().copied()
    }

    /// Stores `item` under `id`, which must be free (from [`Slots::free_id`]).
    pub fn put(&mut self, id: usize, item: T) {
        let at = self.free.iter().rposition(|&f| f == id);
        let at = at.unwrap_or_else(|| panic!("Slots::put: id {id} is not free"));
        self.free.swap_remove(at);
        self.items[id] = Some(item);
    }

    pub fn remove(&mut self, id: usize) -> Option<T> {
        let item = self.items.get_mut(id)?.take();
        if item.is_some() {
            self.free.push(id);
        }
        item
    }

    pub fn get(&self, id: usize) -> Option<&T> {
        self.items.get(id)?.as_ref()
    }

    pub fn get_mut(&mut self, id: usize) -> Option<&mut T> {
        self.items.get_mut(id)?.as_mut()
    }

    pub fn ids(&self) -> impl Iterator<Item = usize> + '_ {
        self.items.iter().enumerate().filter(|(_, x)| x.is_some()).map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_refuses_and_a_freed_id_is_reused() {
        let mut s = Slots::with_capacity(2);
        let a = s.insert('a').unwrap();
        let b = s.insert('b').unwrap();
        assert_eq!(s.insert('c'), Err('c'));
        assert_eq!(s.remove(a), Some('a'));
        assert_eq!(s.remove(a), None, "removing twice gives nothing");
        assert_eq!(s.insert('d'), Ok(a));
        assert_eq!(s.get(b), Some(&'b'));
        assert_eq!(s.ids().count(), 2);
    }
}
